"""The merged feature table: filter rules, author/subreddit history, the column contract."""
