# Airflow image for the docker-compose stack: the official Airflow 3.3 image plus airflow-synth.
#
# Build:  docker compose build        (docker-compose.yaml tags it airflow-synth:local)
# The official image installs Python packages as the `airflow` user (PIP_USER=true) and expects
# to run with group 0, so everything copied here is owned by airflow:0 and group-writable where
# the running user must write.
FROM apache/airflow:3.3.2-python3.11

USER airflow

# SDV depends on torch. A bare `torch` requirement resolves to the CUDA build (several GB of
# nvidia-* wheels); the synthesizers here run on CPU, so install the CPU wheel first and let the
# package install below find the requirement already satisfied.
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

# Only what the build of the distribution needs, so edits to DAGs or SQL do not invalidate this
# (slow) layer. README.md is the project's `readme`, setuptools reads it while building.
COPY --chown=airflow:0 pyproject.toml README.md /opt/airflow/airflow-synth/
COPY --chown=airflow:0 airflow_synth/ /opt/airflow/airflow-synth/airflow_synth/
# Pinning apache-airflow to the image's own version stops pip from up- or downgrading Airflow
# while it resolves our dependencies (the official image's documented practice).
# The argn extra brings TabularARGN's dependencies (what synthesizer "auto" prefers); the
# engine itself goes in without its pins (psutil<6 clashes with Airflow 3, and its torchvision
# cannot load beside CPU torch 2.13; tabular training needs neither): see README "Synthesizers".
# The celery extra: the CeleryExecutor the compose stack runs (scheduler and workers).
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" "/opt/airflow/airflow-synth[argn,celery]" \
    && pip install --no-cache-dir --no-deps mostlyai-engine==2.7.3

# The ready-made DAGs, the SQL (feature queries and Flyway migrations) and the UI plugin are baked
# in so the image works on its own; docker-compose.yaml bind-mounts the same folders over them
# for live editing.
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 sql/ /opt/airflow/sql/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/

# auth/ holds the simple auth manager's password file written by airflow-init. Creating it
# here gives a fresh named volume mounted on it the same owner and mode. No staging folder:
# real rows are staged in the object store (the bucket `<bucket>-staging`), so any worker can
# run any step; set SYNTH_STAGING_DIR only to choose a local folder (LocalExecutor).
RUN mkdir -p /opt/airflow/auth /opt/airflow/logs \
    && chmod 0775 /opt/airflow/auth

ENV SYNTH_SQL_DIR=/opt/airflow/sql \
    SYNTH_SPECS_DIR=/opt/airflow/specs
