from airflow_synth.demo.runner import main

raise SystemExit(main())
