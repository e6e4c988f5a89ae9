"""Classroom mode: accounts with roles (a teacher, students) read from a CSV file, and the fair order in which the one
machine trains the class's runs (round-robin across students, the teacher's pins first).

Plain data and rules only: the store keeps who owns what, the job runner asks `fair_order` which run is next, and the
UI checks ownership on the server. Imports the catalogues (workbench.i18n) and nothing else of the workbench.
"""
