from pitstop.cli import main

raise SystemExit(main())
