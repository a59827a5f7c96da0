"""The database schema: accounts, policies, images, resource groups, agents, sessions, folders.

Names follow Backend.AI's manager tables where it has a counterpart (``keypairs``,
``keypair_resource_policies``, ``scaling_groups``, ``vfolders``...), so that people who know
Backend.AI find their way. Every change to this module needs an Alembic migration in
``migrations/versions`` (``tests/db/test_db.py`` compares the two).
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from ..core.slots import ResourceSlots
from .encryption import EncryptedText
from .types import SlotsType, UTCDateTime, str_enum, utcnow

# Deterministic constraint names, so that migrations can name what they alter on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON, ResourceSlots: SlotsType, dt.datetime: UTCDateTime}


def _slots() -> ResourceSlots:
    return ResourceSlots()


class UserRole(str, enum.Enum):
    SUPERADMIN = "superadmin"
    ADMIN = "admin"  # a domain admin
    USER = "user"
    MONITOR = "monitor"


class UserStatus(str, enum.Enum):
    ACTIVE = "active"
    INACTIVE = "inactive"
    BEFORE_VERIFICATION = "before-verification"


class SchedulerName(str, enum.Enum):
    FIFO = "fifo"
    LIFO = "lifo"
    DRF = "drf"


class AgentStatus(str, enum.Enum):
    ALIVE = "ALIVE"
    LOST = "LOST"
    TERMINATED = "TERMINATED"


class SessionStatus(str, enum.Enum):
    PENDING = "PENDING"
    SCHEDULED = "SCHEDULED"
    PREPARING = "PREPARING"
    PULLING = "PULLING"
    CREATING = "CREATING"
    RUNNING = "RUNNING"
    RESTARTING = "RESTARTING"
    TERMINATING = "TERMINATING"
    TERMINATED = "TERMINATED"
    ERROR = "ERROR"
    CANCELLED = "CANCELLED"


#: Statuses in which a session holds (or is about to hold) resources.
ACTIVE_SESSION_STATUSES = frozenset(
    {
        SessionStatus.SCHEDULED,
        SessionStatus.PREPARING,
        SessionStatus.PULLING,
        SessionStatus.CREATING,
        SessionStatus.RUNNING,
        SessionStatus.RESTARTING,
        SessionStatus.TERMINATING,
    }
)
FINISHED_SESSION_STATUSES = frozenset({SessionStatus.TERMINATED, SessionStatus.ERROR, SessionStatus.CANCELLED})


class FolderOwnership(str, enum.Enum):
    USER = "user"
    GROUP = "group"


class FolderPermission(str, enum.Enum):
    READ_ONLY = "ro"
    READ_WRITE = "rw"
    RW_DELETE = "wd"


class InvitationState(str, enum.Enum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    CANCELED = "canceled"


# --- organisation ---------------------------------------------------------------------------


class Domain(Base):
    __tablename__ = "domains"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # A missing slot is no cap (F2).
    total_resource_slots: Mapped[ResourceSlots] = mapped_column(default=_slots)
    allowed_vfolder_hosts: Mapped[list[str]] = mapped_column(default=list)
    allowed_docker_registries: Mapped[list[str]] = mapped_column(default=list)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    modified_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    groups: Mapped[list[Group]] = relationship(back_populates="domain")


memberships = Table(
    "association_groups_users",
    Base.metadata,
    Column("group_id", ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
)


class Group(Base):
    """A project: users work in one or more groups of their domain."""

    __tablename__ = "groups"
    __table_args__ = (UniqueConstraint("domain_name", "name", name="uq_groups_domain_name_name"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    domain_name: Mapped[str] = mapped_column(ForeignKey("domains.name", onupdate="CASCADE"))
    total_resource_slots: Mapped[ResourceSlots] = mapped_column(default=_slots)
    allowed_vfolder_hosts: Mapped[list[str]] = mapped_column(default=list)
    allowed_docker_registries: Mapped[list[str]] = mapped_column(default=list)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    modified_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    domain: Mapped[Domain] = relationship(back_populates="groups")
    users: Mapped[list[User]] = relationship(secondary=memberships, back_populates="groups")


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(128), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    # An argon2 hash; None for users who only log in through another authenticator.
    password: Mapped[str | None] = mapped_column(String(256))
    need_password_change: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[UserStatus] = mapped_column(str_enum(UserStatus, "userstatus"), default=UserStatus.ACTIVE)
    role: Mapped[UserRole] = mapped_column(str_enum(UserRole, "userrole"), default=UserRole.USER)
    domain_name: Mapped[str] = mapped_column(ForeignKey("domains.name", onupdate="CASCADE"))
    preferred_ssh_port: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    modified_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    domain: Mapped[Domain] = relationship()
    groups: Mapped[list[Group]] = relationship(secondary=memberships, back_populates="users")
    keypairs: Mapped[list[KeyPair]] = relationship(back_populates="user")

    @property
    def is_active(self) -> bool:
        return self.status == UserStatus.ACTIVE


# --- credentials and policies ----------------------------------------------------------------


class KeyPairResourcePolicy(Base):
    __tablename__ = "keypair_resource_policies"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    # A missing slot is unlimited; "Infinity" is unlimited too.
    total_resource_slots: Mapped[ResourceSlots] = mapped_column(default=_slots)
    max_concurrent_sessions: Mapped[int] = mapped_column(Integer, default=0)  # 0 = unlimited
    max_containers_per_session: Mapped[int] = mapped_column(Integer, default=1)
    idle_timeout: Mapped[int] = mapped_column(Integer, default=0)  # seconds, 0 = never
    max_session_lifetime: Mapped[int] = mapped_column(Integer, default=0)  # seconds, 0 = unlimited
    max_pending_session_count: Mapped[int | None] = mapped_column(Integer)
    allowed_vfolder_hosts: Mapped[list[str]] = mapped_column(default=list)
    max_vfolder_count: Mapped[int] = mapped_column(Integer, default=0)  # 0 = unlimited
    max_vfolder_size: Mapped[int] = mapped_column(BigInteger, default=0)  # bytes, 0 = unlimited
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class KeyPair(Base):
    """A Backend.AI access key / secret key pair; every user has at least one."""

    __tablename__ = "keypairs"

    access_key: Mapped[str] = mapped_column(String(20), primary_key=True)
    # Not a hash, as in Backend.AI: the server needs it to check HMAC signatures. Encrypted at
    # rest with the operator's key (see .encryption), like the other secrets below.
    secret_key: Mapped[str] = mapped_column(EncryptedText)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    resource_policy: Mapped[str] = mapped_column(ForeignKey("keypair_resource_policies.name", onupdate="CASCADE"))
    rate_limit: Mapped[int] = mapped_column(Integer, default=1000)  # requests per 15 minutes
    num_queries: Mapped[int] = mapped_column(BigInteger, default=0)
    last_used: Mapped[dt.datetime | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    modified_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    user: Mapped[User] = relationship(back_populates="keypairs")
    policy: Mapped[KeyPairResourcePolicy] = relationship()


class SSHKeyPair(Base):
    """The per-user key pair whose private half is ``/home/work/id_container`` (F16, F22)."""

    __tablename__ = "ssh_keypairs"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    public_key: Mapped[str] = mapped_column(Text)
    private_key: Mapped[str] = mapped_column(EncryptedText)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# --- images and resources -------------------------------------------------------------------


class ResourcePreset(Base):
    __tablename__ = "resource_presets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    resource_slots: Mapped[ResourceSlots] = mapped_column(default=_slots)
    shared_memory: Mapped[int | None] = mapped_column(BigInteger)
    # None: offered in every resource group.
    scaling_group_name: Mapped[str | None] = mapped_column(
        ForeignKey("scaling_groups.name", onupdate="CASCADE", ondelete="CASCADE")
    )


class ContainerRegistry(Base):
    __tablename__ = "container_registries"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    hostname: Mapped[str] = mapped_column(String(256), unique=True)
    url: Mapped[str] = mapped_column(String(512))
    type: Mapped[str] = mapped_column(String(32), default="docker")
    project: Mapped[str | None] = mapped_column(String(256))
    username: Mapped[str | None] = mapped_column(String(256))
    password: Mapped[str | None] = mapped_column(EncryptedText)
    ssl_verify: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Image(Base):
    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("registry", "name", "tag", "architecture", name="uq_images_reference"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # The registry's hostname; "local" for images that exist only on the agents. (The attribute
    # is not called "registry": SQLAlchemy's declarative base reserves that name.)
    registry_host: Mapped[str] = mapped_column("registry", String(256))
    name: Mapped[str] = mapped_column(String(256))  # namespace/name
    tag: Mapped[str] = mapped_column(String(128))
    architecture: Mapped[str] = mapped_column(String(32), default="x86_64")
    digest: Mapped[str | None] = mapped_column(String(128))
    base: Mapped[str | None] = mapped_column(String(256))
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # From the ai.backend.resource.min.<slot> labels, editable by admins (F41).
    min_slots: Mapped[ResourceSlots] = mapped_column(default=_slots)
    # From the ai.backend.service-ports label: [{"name", "protocol", "ports"}].
    service_ports: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    installed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    @property
    def reference(self) -> str:
        ref = f"{self.name}:{self.tag}"
        return ref if self.registry_host in ("", "local") else f"{self.registry_host}/{ref}"


sgroups_for_domains = Table(
    "sgroups_for_domains",
    Base.metadata,
    Column(
        "scaling_group", ForeignKey("scaling_groups.name", onupdate="CASCADE", ondelete="CASCADE"), primary_key=True
    ),
    Column("domain", ForeignKey("domains.name", onupdate="CASCADE", ondelete="CASCADE"), primary_key=True),
)
sgroups_for_groups = Table(
    "sgroups_for_groups",
    Base.metadata,
    Column(
        "scaling_group", ForeignKey("scaling_groups.name", onupdate="CASCADE", ondelete="CASCADE"), primary_key=True
    ),
    Column("group_id", ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
)
sgroups_for_keypairs = Table(
    "sgroups_for_keypairs",
    Base.metadata,
    Column(
        "scaling_group", ForeignKey("scaling_groups.name", onupdate="CASCADE", ondelete="CASCADE"), primary_key=True
    ),
    Column("access_key", ForeignKey("keypairs.access_key", ondelete="CASCADE"), primary_key=True),
)


class ScalingGroup(Base):
    """A resource group: a set of agents with one scheduler."""

    __tablename__ = "scaling_groups"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    driver: Mapped[str] = mapped_column(String(32), default="docker")
    driver_opts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    scheduler: Mapped[SchedulerName] = mapped_column(
        str_enum(SchedulerName, "schedulername"), default=SchedulerName.FIFO
    )
    # agent_selection ("concentrated" | "dispersed"), fifo_max_skips, gpu_quantum, ...
    scheduler_opts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    pending_timeout: Mapped[int] = mapped_column(Integer, default=0)  # seconds, 0 = wait forever
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    domains: Mapped[list[Domain]] = relationship(secondary=sgroups_for_domains)
    groups: Mapped[list[Group]] = relationship(secondary=sgroups_for_groups)
    keypairs: Mapped[list[KeyPair]] = relationship(secondary=sgroups_for_keypairs)


class Agent(Base):
    """A worker node (the Docker engine of one host, a Swarm or Kubernetes node)."""

    __tablename__ = "agents"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[AgentStatus] = mapped_column(str_enum(AgentStatus, "agentstatus"), default=AgentStatus.ALIVE)
    status_changed: Mapped[dt.datetime | None] = mapped_column()
    #: Why it is lost or not schedulable, as its backend says (a swarm node drained, down, or not
    #: seeing the folder storage); None when nothing is wrong.
    status_info: Mapped[str | None] = mapped_column(String(512))
    region: Mapped[str] = mapped_column(String(64), default="local")
    scaling_group: Mapped[str] = mapped_column(ForeignKey("scaling_groups.name", onupdate="CASCADE"), index=True)
    schedulable: Mapped[bool] = mapped_column(Boolean, default=True)
    available_slots: Mapped[ResourceSlots] = mapped_column(default=_slots)
    occupied_slots: Mapped[ResourceSlots] = mapped_column(default=_slots)
    # [{"id": "0", "slot": "cuda.shares", "capacity": "1"}, ...]
    devices: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    addr: Mapped[str] = mapped_column(String(256), default="")
    version: Mapped[str] = mapped_column(String(64), default="")
    first_contact: Mapped[dt.datetime] = mapped_column(default=utcnow)
    lost_at: Mapped[dt.datetime | None] = mapped_column()


class AgentImage(Base):
    """An image on an agent, as the agent reports it, or its install in progress (Backend.AI's
    ``installed_agents``).

    The agent's backend keeps these rows: at each heartbeat it reports the images it has
    (``installed``; rows of images it no longer has are dropped), and it pulls what an
    administrator queued (``queued`` → ``pulling`` with ``progress_current`` of
    ``progress_total`` bytes → ``installed``, or ``failed`` with the reason in ``message``).
    ``reference`` is normalized (:func:`..core.images.normalize_reference`).
    """

    __tablename__ = "agent_images"

    agent_id: Mapped[str] = mapped_column(
        ForeignKey("agents.id", onupdate="CASCADE", ondelete="CASCADE"), primary_key=True
    )
    reference: Mapped[str] = mapped_column(String(512), primary_key=True, index=True)
    status: Mapped[str] = mapped_column(String(16), default="installed")
    progress_current: Mapped[int | None] = mapped_column(BigInteger)
    progress_total: Mapped[int | None] = mapped_column(BigInteger)
    message: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# --- sessions -------------------------------------------------------------------------------


class Session(Base):
    """A compute session (one JupyterHub named server)."""

    __tablename__ = "sessions"
    __table_args__ = (
        Index("ix_sessions_status_scaling_group", "status", "scaling_group"),
        # The session lists (a user's, a domain's, everyone's), newest first, filtered by status:
        # the index holds the order (created_at, id) and the filter, so a page, its offset and
        # the count are read from the index alone.
        Index("ix_sessions_user_list", "user_id", "created_at", "id", "status"),
        Index("ix_sessions_domain_list", "domain_name", "created_at", "id", "status"),
        Index("ix_sessions_created_list", "created_at", "id", "status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(64))
    session_type: Mapped[str] = mapped_column(String(16), default="interactive")
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    access_key: Mapped[str] = mapped_column(ForeignKey("keypairs.access_key"), index=True)
    domain_name: Mapped[str] = mapped_column(ForeignKey("domains.name", onupdate="CASCADE"))
    group_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("groups.id", ondelete="SET NULL"))
    scaling_group: Mapped[str] = mapped_column(ForeignKey("scaling_groups.name", onupdate="CASCADE"))
    agent_id: Mapped[str | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    image: Mapped[str] = mapped_column(String(512))
    status: Mapped[SessionStatus] = mapped_column(
        str_enum(SessionStatus, "sessionstatus"), default=SessionStatus.PENDING
    )
    status_info: Mapped[str] = mapped_column(Text, default="")  # the reason of the last change
    requested_slots: Mapped[ResourceSlots] = mapped_column(default=_slots)
    occupied_slots: Mapped[ResourceSlots] = mapped_column(default=_slots)
    resource_opts: Mapped[dict[str, Any]] = mapped_column(default=dict)  # shmem, ...
    # {"cuda.shares": {"0": "0.5"}} or {"cuda.device": {"1": "1"}}
    gpu_placement: Mapped[dict[str, Any]] = mapped_column(default=dict)
    mounts: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # [{"folder", "path", "permission"}]
    service_ports: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    environ: Mapped[dict[str, Any]] = mapped_column(default=dict)
    container_id: Mapped[str | None] = mapped_column(String(128))
    server_name: Mapped[str | None] = mapped_column(String(255))  # the hub's named server
    ssh_port: Mapped[int | None] = mapped_column(Integer)
    # How often FIFO has let later sessions pass this one (bounded; see core.scheduling.fifo).
    passed_over: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    scheduled_at: Mapped[dt.datetime | None] = mapped_column()
    started_at: Mapped[dt.datetime | None] = mapped_column()
    terminated_at: Mapped[dt.datetime | None] = mapped_column()
    last_activity: Mapped[dt.datetime | None] = mapped_column()

    history: Mapped[list[SessionStatusChange]] = relationship(
        order_by="SessionStatusChange.id", cascade="all, delete-orphan"
    )


class SessionStatusChange(Base):
    __tablename__ = "session_status_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    status: Mapped[SessionStatus] = mapped_column(str_enum(SessionStatus, "sessionstatus"))
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SessionUsage(Base):
    """One usage sample of a running session."""

    __tablename__ = "session_usage"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    cpu_percent: Mapped[float] = mapped_column(Float, default=0.0)
    cpu_seconds: Mapped[float] = mapped_column(Float, default=0.0)  # cumulative
    mem_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    io_read_bytes: Mapped[int] = mapped_column(BigInteger, default=0)  # cumulative
    io_write_bytes: Mapped[int] = mapped_column(BigInteger, default=0)  # cumulative
    gpu_percent: Mapped[float | None] = mapped_column(Float)  # summed over its devices, like cpu_percent
    gpu_mem_bytes: Mapped[int | None] = mapped_column(BigInteger)  # on its devices (nvidia-smi's reading)


class SessionLog(Base):
    """How much of a session's output is kept (its chunks) and how much was dropped before them."""

    __tablename__ = "session_logs"

    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True)
    kept_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    dropped_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SessionLogChunk(Base):
    """A piece of a session's output (stdout and stderr as they came), oldest first by id."""

    __tablename__ = "session_log_chunks"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


# --- folders --------------------------------------------------------------------------------


class VFolder(Base):
    """A virtual folder: a directory on a storage host that outlives sessions."""

    __tablename__ = "vfolders"
    __table_args__ = (
        # Two owners may use one name; one owner may not use it twice (NULLs never collide).
        UniqueConstraint("user_id", "name", name="uq_vfolders_user_name"),
        UniqueConstraint("group_id", "name", name="uq_vfolders_group_name"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(128), default="local")
    ownership_type: Mapped[FolderOwnership] = mapped_column(str_enum(FolderOwnership, "folderownership"))
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    group_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    creator: Mapped[str | None] = mapped_column(String(254))  # e-mail of who created it
    # What group members get on a group folder; owners of user folders always have "wd".
    permission: Mapped[FolderPermission] = mapped_column(
        str_enum(FolderPermission, "folderpermission"), default=FolderPermission.RW_DELETE
    )
    usage_mode: Mapped[str] = mapped_column(String(16), default="general")
    quota: Mapped[int | None] = mapped_column(BigInteger)  # bytes; None = the policy's capacity
    cloneable: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_used: Mapped[dt.datetime | None] = mapped_column()
    # The last measured size (a walk of the directory), so that listings never walk 1,000 trees;
    # usage_at says how old it is (None: never measured).
    used_bytes: Mapped[int | None] = mapped_column(BigInteger)
    file_count: Mapped[int | None] = mapped_column(BigInteger)
    usage_at: Mapped[dt.datetime | None] = mapped_column()

    @property
    def is_automount(self) -> bool:
        return self.name.startswith(".")


class VFolderPermission(Base):
    """A folder shared with one user (by invitation, or a group folder shared per user)."""

    __tablename__ = "vfolder_permissions"

    vfolder_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("vfolders.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    permission: Mapped[FolderPermission] = mapped_column(str_enum(FolderPermission, "folderpermission"))


class VFolderInvitation(Base):
    __tablename__ = "vfolder_invitations"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    vfolder_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("vfolders.id", ondelete="CASCADE"), index=True)
    inviter: Mapped[str] = mapped_column(String(254))  # e-mail
    invitee: Mapped[str] = mapped_column(String(254), index=True)  # e-mail
    permission: Mapped[FolderPermission] = mapped_column(str_enum(FolderPermission, "folderpermission"))
    state: Mapped[InvitationState] = mapped_column(
        str_enum(InvitationState, "invitationstate"), default=InvitationState.PENDING
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    modified_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# --- sign-up and account tokens -------------------------------------------------------------


class TokenPurpose(str, enum.Enum):
    VERIFY_EMAIL = "verify-email"
    RESET_PASSWORD = "reset-password"


class SignupInvitation(Base):
    """A single-use, expiring token that lets one person sign up (F8)."""

    __tablename__ = "signup_invitations"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # Only the SHA-256 of the token is kept: a leaked database must not let anyone sign up.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str | None] = mapped_column(String(254))  # when set, only this address may use it
    created_by: Mapped[str] = mapped_column(String(254), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()
    used_at: Mapped[dt.datetime | None] = mapped_column()
    used_by: Mapped[str | None] = mapped_column(String(254))


class UserToken(Base):
    """A single-use, expiring token mailed to a user: e-mail verification or password reset."""

    __tablename__ = "user_tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[TokenPurpose] = mapped_column(str_enum(TokenPurpose, "tokenpurpose"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()
    used_at: Mapped[dt.datetime | None] = mapped_column()
