"""The seacan command (``seacan.cli.main``); it talks to seacand through seacan.client only."""
