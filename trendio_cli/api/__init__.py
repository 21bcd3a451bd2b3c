"""The TikTok Shop affiliate-seller API: endpoints, signing, credentials, client and answer classification."""
