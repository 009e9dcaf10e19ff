from decimal import Decimal

from django.db import models


class ExactDecimalField(models.DecimalField):
    """A decimal that round-trips every digit on every backend.

    PostgreSQL's numeric is exact already. SQLite keeps only 15 significant digits in its
    NUMERIC affinity (and Django quantizes through a float), so there the value is stored
    as text. Only use it for values we never filter or aggregate on in SQL.
    """

    def get_internal_type(self):
        # Not "DecimalField": that would route SQLite reads through a 15-digit float converter.
        return "ExactDecimalField"

    def db_type(self, connection):
        if connection.vendor == "sqlite":
            return "text"
        return f"numeric({self.max_digits}, {self.decimal_places})"

    def cast_db_type(self, connection):
        return self.db_type(connection)

    def get_db_prep_value(self, value, connection, prepared=False):
        if connection.vendor == "sqlite":
            value = self.to_python(value)
            return None if value is None else format(value, "f")
        return self.to_python(value)

    def get_db_converters(self, connection):
        return [self._from_db, *super().get_db_converters(connection)]

    def _from_db(self, value, expression, connection):
        if value is None or isinstance(value, Decimal):
            return value
        return Decimal(str(value))
