"""Partner Center: the REST client, the local emulator, subscription sync, and (in recon/) file imports."""
