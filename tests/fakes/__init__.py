"""Local HTTP servers that speak outside APIs (Gemini, OpenAI-compatible) for the tests."""
