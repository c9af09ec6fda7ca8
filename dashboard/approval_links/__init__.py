"""Signed one-time approval links (issue 25, item 4): the approval mail gives each approver a
link to the exact request; after signing in they approve or reject it there, through the same
services as the pages, the API and the commands. Only a hash of each token is stored; a link
works for its recipient only, once, until the request's approval expires.

Each kind of approval request (a run, an Altcraft launch) is a "subject": the core knows runs
(subjects.py); feature apps contribute theirs through `AppConfig.approval_link_subjects`.
"""
