"""The sessions a person is logged in with ("Your sessions"), and ending them.

Every login records a LoginSession: whose it is, when it began and was last seen, from which
address and device. Only a hash of the session key is kept here; ending a session deletes it
from the session store (database and Redis, dashboard/accounts/sessions.py), so the next request
of that browser is logged out at once.

Sessions belong to a person, not to a tenant (one login serves every tenant the person is a
member of). So ending is per person: a person ends their own; an admin of any tenant the person
belongs to may end all of that person's sessions, audited in the admin's tenant; removing a
member ends all their sessions and revokes their API tokens of that tenant.
"""
