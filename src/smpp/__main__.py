from smpp.cli import main

raise SystemExit(main())
