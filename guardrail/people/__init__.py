"""People who sign in (admin, reviewer, auditor, compliance), their sessions and API tokens,
client keys kept in the store, CSRF and the sign-in rate limit: authentication in one place."""
