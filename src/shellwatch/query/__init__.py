"""Rule query languages (EQL, Sigma) and the IR they compile to."""
