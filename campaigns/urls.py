from django.urls import include, path

urlpatterns: list = [
    path("altcraft/", include("campaigns.altcraft_launches.urls")),
]
