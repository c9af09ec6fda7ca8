"""Send windows and blackout dates per connection: when sending through it is allowed.

A window is weekdays and a start and end local time in an IANA time zone (Mon to Fri, 08:00 to
21:00, Europe/Berlin); a blackout date is a local date on which nothing is sent, with a reason. The
rules are one pure function (rules.next_allowed); a new trigger outside them is refused
(services.check_send_window, beside the pause check), and a queued run that reaches the worker
outside them is held until they open (the engine asks selectors.send_hold_for).
"""
