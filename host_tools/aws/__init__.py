"""AWS IoT: the local stand-in (mosquitto, shadow service), the shadow client,
provisioning and remote configuration."""
