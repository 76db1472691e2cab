from omnistock.cli import main

raise SystemExit(main())
