"""A local stand-in for the TikTok Shop affiliate-seller API that enforces the platform's rules."""
