"""The ESL pipeline's steps as plain functions, one import point for every entry point.

extract → synthesize (profile, fit, sample, assess, gates) → publish → optional target
load, each over a table set; a single feature table is a set of one. Operators, TaskFlow
tasks, ``@task.synthesize``, the task groups and the demo all call these, so each rule
(where files go, what is checked, what is recorded) exists once. Inputs and outputs are
paths, plain values and an :class:`~airflow_synth.core.publish.store.ObjectStore`; the
returned dicts are small and JSON-safe, made for XCom.
"""

from airflow_synth.core.extract.tables import (
    REAL_FILE,
    TableSource,
    describe_set,
    extract_set_table,
    extract_tables,
    limit_query,
    plan_multitable_extract,
    quote_identifier,
    run_extract,
    run_multitable_extract,
)
from airflow_synth.core.publish.tables import (
    OUTPUT_FORMATS,
    PUBLIC_SYNTHESIS_KEYS,
    check_formats,
    publish_tables,
    write_csv,
)
from airflow_synth.core.steps.finish import METADATA_FILE, QUALITY_FILE, REPORTS_DIR, save_model
from airflow_synth.core.steps.fit import (
    DEFAULT_SET_SYNTHESIZER,
    HMA_ENGINE,
    PerTablePrepared,
    classify_set,
    learned_columns,
    require_modelled,
)
from airflow_synth.core.steps.publish import run_load, run_multitable_publish
from airflow_synth.core.steps.sharded import (
    FIT_FILE,
    SYNTHETIC_FILE,
    ShardSample,
    TableFit,
    finish_shards,
    sample_shard,
    train_table,
)
from airflow_synth.core.steps.staged import dump_staged, load_staged
from airflow_synth.core.steps.synthesize import (
    DEFAULT_ENGINE,
    DEFAULT_MAX_PARENTS,
    ENGINES,
    fit_multitable_table,
    prepare_multitable,
    run_multitable_synthesize,
    run_synthesize,
    synthesize_set,
)
from airflow_synth.core.target.published import load_published_set

__all__ = [
    "DEFAULT_ENGINE",
    "DEFAULT_MAX_PARENTS",
    "DEFAULT_SET_SYNTHESIZER",
    "ENGINES",
    "FIT_FILE",
    "HMA_ENGINE",
    "METADATA_FILE",
    "OUTPUT_FORMATS",
    "PerTablePrepared",
    "PUBLIC_SYNTHESIS_KEYS",
    "QUALITY_FILE",
    "REAL_FILE",
    "REPORTS_DIR",
    "SYNTHETIC_FILE",
    "ShardSample",
    "TableFit",
    "TableSource",
    "check_formats",
    "classify_set",
    "describe_set",
    "dump_staged",
    "extract_set_table",
    "extract_tables",
    "finish_shards",
    "fit_multitable_table",
    "learned_columns",
    "limit_query",
    "load_staged",
    "load_published_set",
    "plan_multitable_extract",
    "prepare_multitable",
    "publish_tables",
    "quote_identifier",
    "require_modelled",
    "run_extract",
    "run_load",
    "run_multitable_extract",
    "run_multitable_publish",
    "run_multitable_synthesize",
    "run_synthesize",
    "sample_shard",
    "save_model",
    "synthesize_set",
    "train_table",
    "write_csv",
]
