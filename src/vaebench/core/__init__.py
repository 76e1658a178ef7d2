"""What every stage shares: params, paths, atomic files, errors, the runtime and the machine's checks."""
