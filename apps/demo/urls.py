from django.urls import path

from apps.demo import views

urlpatterns = [
    path("demo/phone/", views.phone_page, name="demo-phone"),
    path("demo/phone/messages", views.phone_messages, name="demo-phone-messages"),
    path("demo/phone/send", views.phone_send, name="demo-phone-send"),
    path("demo/phone/delivered", views.phone_delivered, name="demo-phone-delivered"),
    path("demo/phone/provider/v1/messages", views.provider_messages, name="demo-phone-provider"),
]
