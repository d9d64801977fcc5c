"""Tenancy workflows shared by the operator commands, the demo seed and the tests."""

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email, validate_slug
from django.db import transaction

from meshline.models import Membership, Organization, Role


def create_organization(slug: str, name: str) -> tuple[Organization, bool]:
    """Create the organization, or return the existing one with that slug (renamed to name)."""
    validate_slug(slug)
    organization, created = Organization.objects.get_or_create(slug=slug, defaults={"name": name})
    if not created and organization.name != name:
        organization.name = name
        organization.save(update_fields=["name"])
    return organization, created


@transaction.atomic
def create_user(email: str, organization: Organization, role: str, password: str):
    """Create (or update) a user by email and give them ``role`` in the organization.

    Admins become staff so that they can sign in to the tenant-aware Django admin. The
    password must pass AUTH_PASSWORD_VALIDATORS, as it would in a password-change form:
    an operator command is no reason to accept "123".
    """
    validate_email(email)
    if role not in Role.values:
        raise ValidationError(f"Unknown role {role!r}; choose one of {', '.join(Role.values)}.")
    User = get_user_model()
    user = User.objects.filter(username=email).first()
    if user is None:
        user = User(username=email, email=email)
    validate_password(password, user)
    user.set_password(password)
    if role == Role.ADMIN:
        user.is_staff = True
    user.save()
    Membership.objects.update_or_create(
        user=user, organization=organization, defaults={"role": role}
    )
    return user
