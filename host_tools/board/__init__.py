"""A board on a serial port: the mpremote transport, deploying and flashing."""
