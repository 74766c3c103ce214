"""The site's user: Django's user plus the one role that decides which pages a person may use.

A teacher also has an approval state. Anyone may sign up as a teacher, so a self-registered teacher
starts *pending*: they can log in, upload and preview problem sets, but cannot reach students
(create classes, assign sets, offer practice sets) until a site admin approves them. Teachers made
by an admin (django-admin, `seed_demo`, `user_create` without `self_registered`) start approved.
An admin may also trust an approved teacher for training: such a teacher approves their own sets
for the training pool.
"""

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models


class Role(models.TextChoices):
    STUDENT = "student", "Student"
    TEACHER = "teacher", "Teacher"
    ADMIN = "admin", "Admin"


class TeacherStatus(models.TextChoices):
    PENDING = "pending", "Awaiting approval"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Not approved"


class User(AbstractUser):
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.STUDENT)
    # Meaningful for teachers only; every other account stays "approved".
    teacher_status = models.CharField(
        max_length=16, choices=TeacherStatus.choices, default=TeacherStatus.APPROVED
    )
    trusted_for_training = models.BooleanField(
        default=False, help_text="May approve their own problem sets for the training pool."
    )
    teacher_reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    teacher_reviewed_at = models.DateTimeField(null=True, blank=True)

    @property
    def is_student(self) -> bool:
        return self.role == Role.STUDENT

    @property
    def is_teacher(self) -> bool:
        return self.role == Role.TEACHER

    @property
    def is_site_admin(self) -> bool:
        # Django superusers are admins of the site whatever their role field says.
        return self.role == Role.ADMIN or self.is_superuser

    @property
    def is_unapproved_teacher(self) -> bool:
        """A teacher an admin has not approved (pending or rejected): not yet allowed to publish."""
        return (
            self.is_teacher
            and not self.is_site_admin
            and (self.teacher_status != TeacherStatus.APPROVED)
        )

    @property
    def may_publish(self) -> bool:
        """May reach students: create classes, assign sets, offer practice sets."""
        return self.is_site_admin or (
            self.is_teacher and self.teacher_status == TeacherStatus.APPROVED
        )

    @property
    def may_approve_own_sets_for_training(self) -> bool:
        return self.is_site_admin or (self.may_publish and self.trusted_for_training)
