"""Spotify: the PKCE login, and the mock Web API and accounts service."""
