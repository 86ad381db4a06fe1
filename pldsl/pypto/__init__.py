"""Running PyPTO files unchanged (`pldsl pypto FILE`)."""
