"""The saga command line (docs/cli.md); the entry point is saga.cli.main:main."""
