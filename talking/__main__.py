from talking.cli import main

raise SystemExit(main())
