"""Arena: blind A/B votes in SQLite and their export as preference pairs (`votes`), and the ratings computed from
them — Elo, Bradley-Terry, bootstrap intervals, win rates and their charts (`ratings`). May import: `runs`,
`models`, `config` and the leaves.
"""
