"""Development helpers: a local fake of the Reddit API for tests and the demo."""
