"""Use cases: validate → write projection rows → journal → (audit), in one transaction."""
