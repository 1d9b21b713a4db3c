"""One module per `budgetkeeper` sub-command; each exposes `register(subparsers)`."""
