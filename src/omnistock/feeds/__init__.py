"""Feeds for outside systems (Google local inventory), and the follower that keeps one current."""
