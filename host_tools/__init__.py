"""SpottyPottySense host tools: the `spotty` command."""
