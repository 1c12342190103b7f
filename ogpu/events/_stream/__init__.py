"""The stream: its pure core (chain view, screening, filter doubt, lanes, cursor rule) and its loop."""
