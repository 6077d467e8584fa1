"""One module per `ambiview-cli` subcommand; each defines register(subparsers)."""
