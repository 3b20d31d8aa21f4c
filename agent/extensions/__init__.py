"""Extensions: components outside the data path (health checks, storage...)."""
