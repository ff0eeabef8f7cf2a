"""The dev loop: the `-dev` command and the local servers it and the tests start; never run
in production."""
