from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """Our own user model from the first migration, so accounts can grow without a swap."""

    email = models.EmailField("email address", unique=True, blank=True, null=True)
    time_zone = models.CharField(max_length=64, default="UTC", help_text="Used for quiet hours in alerts.")
