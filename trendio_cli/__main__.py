from trendio_cli.cli import main

main()
