"""Validated administrative operations on the database.

One place for what an operator (the CLI, the bootstrap file, the manager's admin API) may
create, change and list. Every function takes an open SQLAlchemy session, checks its input,
and raises an :class:`AdminError` whose one-line message says what is wrong; the caller commits.

One module per concern: :mod:`.validation` (the pure input checks and the error types),
:mod:`.lookups` (rows by name), :mod:`.orgs` (the defaults, domains and groups),
:mod:`.policies`, :mod:`.users` (users and keypairs), :mod:`.presets`, :mod:`.images` (images
and registries) and :mod:`.scaling_groups` (resource groups). Their public names are all
importable from here, which is how callers use them (``admin.get_user``).
"""

from .images import (
    MIN_LABEL,
    SERVICE_PORTS_LABEL,
    add_registry,
    parse_service_ports,
    remove_registry,
    set_image_min,
    upsert_image,
)
from .lookups import (
    find_login_user,
    get_domain,
    get_group,
    get_image,
    get_keypair,
    get_policy,
    get_preset,
    get_registry,
    get_scaling_group,
    get_user,
    login_throttle_key,
)
from .orgs import (
    ORG_FIELDS,
    add_user_to_group,
    create_domain,
    create_group,
    ensure_defaults,
    merge_caps,
    remove_user_from_group,
    update_domain,
    update_group,
)
from .policies import (
    POLICY_FIELDS,
    create_policy,
    delete_policy,
    update_policy,
)
from .presets import (
    create_preset,
    delete_preset,
    update_preset,
)
from .scaling_groups import (
    AGENT_SELECTIONS,
    allow_scaling_group,
    create_scaling_group,
    delete_scaling_group,
    update_scaling_group,
)
from .users import (
    create_keypair,
    create_user,
    deactivate_user,
    delete_keypair,
    update_keypair,
    update_user,
)
from .validation import (
    DEFAULT,
    AdminError,
    Conflict,
    NotFound,
    check_email,
    check_hosts,
    check_name,
    check_non_negative,
    check_username,
    parse_enum,
    parse_image_ref,
    parse_slots,
    username_from_email,
)

__all__ = [
    "AGENT_SELECTIONS",
    "AdminError",
    "Conflict",
    "DEFAULT",
    "MIN_LABEL",
    "NotFound",
    "ORG_FIELDS",
    "POLICY_FIELDS",
    "SERVICE_PORTS_LABEL",
    "add_registry",
    "add_user_to_group",
    "allow_scaling_group",
    "check_email",
    "check_hosts",
    "check_name",
    "check_non_negative",
    "check_username",
    "create_domain",
    "create_group",
    "create_keypair",
    "create_policy",
    "create_preset",
    "create_scaling_group",
    "create_user",
    "deactivate_user",
    "delete_keypair",
    "delete_policy",
    "delete_preset",
    "delete_scaling_group",
    "ensure_defaults",
    "find_login_user",
    "get_domain",
    "get_group",
    "get_image",
    "get_keypair",
    "get_policy",
    "get_preset",
    "get_registry",
    "get_scaling_group",
    "get_user",
    "login_throttle_key",
    "merge_caps",
    "parse_enum",
    "parse_image_ref",
    "parse_service_ports",
    "parse_slots",
    "remove_registry",
    "remove_user_from_group",
    "set_image_min",
    "update_domain",
    "update_group",
    "update_keypair",
    "update_policy",
    "update_preset",
    "update_scaling_group",
    "update_user",
    "upsert_image",
    "username_from_email",
]
