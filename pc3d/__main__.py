from pc3d.cli import main

raise SystemExit(main())
