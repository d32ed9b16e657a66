"""Post sources: the Reddit API (live) and archive dumps (history). Both yield PostRecords."""
