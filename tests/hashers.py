"""A password hasher for the test process only: Django's PBKDF2 at one iteration.

The iteration count is written into each hash, so the stacks' subprocesses (which keep the real settings and
their million iterations) still verify a password set here, and upgrade it on the first login.
"""

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class OneIterationPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    iterations = 1
