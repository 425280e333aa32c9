"""convlab's command line and configuration (the `convlab` entry point)."""
