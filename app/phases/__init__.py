"""The challenge's calendar and its consequences: phases, limits, final selection, the lock at
the end, ladder feedback and withdrawal. Below the domains: they ask it, it asks none of them."""
