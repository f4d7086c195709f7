"""Small helpers every part shares: errors, throwaway CAs, private files, the firmware's
place and its pure `core` package, serving HTTPS in a thread."""
