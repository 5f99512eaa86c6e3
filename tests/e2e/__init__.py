"""Browser tests of the dashboard: a real controller, its HTTP server and Debian chromium."""
