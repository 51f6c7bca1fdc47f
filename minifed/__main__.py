from minifed.cli import main

raise SystemExit(main())
