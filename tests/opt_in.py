"""The tag that opts a role in to session denies, as the tests put it on roles (`Tags=OPTED_IN`)."""

from budgetkeeper.enforcement.role_sessions import OPT_IN_TAG_KEY, OPT_IN_TAG_VALUE

OPTED_IN = [{"Key": OPT_IN_TAG_KEY, "Value": OPT_IN_TAG_VALUE}]
