"""leadsync."""
