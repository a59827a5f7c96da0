"""The administration API (F35–F47): users, keypairs, policies, images, registries, presets, agents, groups.

Backend.AI's console does all of this through the manager's GraphQL endpoint; this project
speaks plain REST instead, with Backend.AI's field names (the views of :mod:`...db.views`), so
that scripts need no GraphQL client. Every write goes through :mod:`...db.admin`, the one place
that validates administrative input: its messages come back as ``{"title": ...}`` with the
error's status (400 bad input, 404 unknown, 409 conflict).

Who may do what (checked before the database is touched):

* a plain user: nothing here (403 with the reason);
* a domain admin: the users, keypairs and groups of their own domain (a superadmin account is
  out of their reach even when it lives in that domain); read access to policies, presets,
  registries, images and the resource groups open to their domain;
* a superadmin: everything, including the global objects (policies, presets, images,
  registries, agents, resource groups, domains, settings, maintenance).

Paths (relative to the service's base URL)::

    GET    /admin/users?status=active|inactive|all&domain=     list (domain admins: their domain)
    POST   /admin/users                                        create; answers the user and its keypair
    GET    /admin/users/{email}                                detail (e-mail or user name)
    PATCH  /admin/users/{email}                                username, password, role, status, full_name,
                                                               description, need_password_change
    DELETE /admin/users/{email}                                deactivate (users are never deleted, F37)
    GET    /admin/keypairs?active=true|false|all&user=         list
    POST   /admin/keypairs                                     {user, policy, rate_limit, is_admin,
                                                                access_key?, secret_key?}
    GET|PATCH|DELETE /admin/keypairs/{access_key}              PATCH: policy, rate_limit, is_active, is_admin;
                                                               DELETE: 409 once it ran a session
    GET|POST /admin/policies, GET|PATCH|DELETE /admin/policies/{name}
    GET    /admin/images?installed=true|false                  list
    POST   /admin/images/rescan                                read every registry (Docker Registry API v2)
    POST   /admin/images/cleanup                               {dry_run?, registry?} drop unused rows
    GET|PATCH /admin/images/{ref}?architecture=                PATCH: {min_slots}; with installed_agents, installs
    POST   /admin/images/{ref}/install                         {scaling_group?, agents?}: the agents pull it
    GET|POST /admin/registries, GET|DELETE /admin/registries/{hostname}
    GET|POST /admin/presets, GET|PATCH|DELETE /admin/presets/{name}
    GET    /admin/agents?status=alive|lost|all                 capacity, occupied (from sessions), status
    PATCH  /admin/agents/{id}                                  {schedulable}
    GET|POST /admin/scaling-groups, GET|PATCH /admin/scaling-groups/{name}
    POST   /admin/scaling-groups/{name}/allow                  {domains, groups, keypairs, revoke}
    GET|POST /admin/domains, GET|PATCH /admin/domains/{name}   PATCH (superadmins): total_resource_slots
                                                               (the slots named; "unlimited" lifts a cap),
                                                               description, allowed_vfolder_hosts,
                                                               allowed_docker_registries
    GET|POST /admin/groups?domain=, GET|PATCH /admin/groups/{name}?domain=   PATCH as for a domain
    POST   /admin/groups/{name}/members                        {add, remove, domain?}
    GET    /admin/settings                                     read-only system view (F46)
    POST   /admin/maintenance/recalculate-usage                delegated to the resources module (F47)

One module per resource (one URL prefix each): :mod:`.users`, :mod:`.keypairs`,
:mod:`.policies`, :mod:`.images`, :mod:`.registries`, :mod:`.presets`, :mod:`.agents`,
:mod:`.scaling_groups`, :mod:`.domains`, :mod:`.groups`, :mod:`.settings`,
:mod:`.maintenance`; what they share is in :mod:`.common`, and the registries' HTTP client in
:mod:`..registry`.
"""
