"""The ogpu-events command: arguments, output, --state, block times, the demo."""
