"""One module per command: each a plain function that returns data (the CLI prints it)."""
