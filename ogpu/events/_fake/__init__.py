"""The in-memory node behind ogpu.events.testing."""
